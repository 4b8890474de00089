-- 0005: reserved for another change being made at the same time (its own file
-- replaces this one); here only so that migrations stay numbered without a gap.
SELECT 1;

-- Branch-only placeholder (b-partitions): migration numbers must run without gaps, and
-- 0020-0023 belong to other branches. Delete this file when merging.
SELECT 1;

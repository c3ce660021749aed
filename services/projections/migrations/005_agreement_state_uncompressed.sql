-- An agreement's row is written again at every event, and its `state` document (about 3 KB)
-- passed PostgreSQL's TOAST threshold: each write compressed it with pglz, the largest CPU cost
-- of the projection's upsert (0.24 ms of 0.26 ms per row in the bench's read models; 0.17 ms
-- stored out of line uncompressed). EXTERNAL keeps it out of line and uncompressed: more bytes
-- on disk, less CPU per event. Existing values keep their form until they are written again.
ALTER TABLE agreements ALTER COLUMN state SET STORAGE EXTERNAL;

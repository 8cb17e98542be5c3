-- Whether a job fell due while it was held (its organization, or the parent, suspended) since it
-- was last scheduled: set by the claim that parks it, cleared when it is scheduled again. A
-- webhook retry that waited for a resume moves the rest of its schedule by the time held
-- (API.md §7 "time held does not use up retries"); one that did not keeps the schedule.
ALTER TABLE jobs ADD COLUMN was_held boolean NOT NULL DEFAULT false;

-- keys: 8
-- uses: apply-read
-- Everything the apply step reads, in one step (lib/apply-read.lua says what and why): one
-- command instead of seven on every run.
-- KEYS[1] unapplied changes (list), KEYS[2] mailbox, KEYS[3] page cursor (string), KEYS[4] files,
-- KEYS[5] file-ids, KEYS[6] ignored, KEYS[7] download queue, KEYS[8] the apply's frozen ignore patterns
return apply_read(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])

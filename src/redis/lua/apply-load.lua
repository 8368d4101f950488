-- keys: 7
-- uses: apply-read
-- Everything the apply step reads, in one step (lib/apply-read.lua says what and why): one
-- command instead of seven on every run.
-- KEYS[1] unapplied changes (list), KEYS[2] listing hash, KEYS[3] files, KEYS[4] file-ids,
-- KEYS[5] ignored, KEYS[6] download queue, KEYS[7] account hash
return apply_read(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])

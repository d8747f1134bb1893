"""Official benchmark protocols (`catface benchmark`): the published evaluation of each set.

`verification_bins` (insightface's LFW, CFP-FP, CPLFW, AgeDB-30, CALFW `.bin`
files), `ijb` (IJB-B/C 1:1 and 1:N), `tinyface` and `scface` each find their
layout under a root folder and run its protocol; `feature_store` embeds and
caches the images, `table` writes the comparison table and `run` ties them
together.
"""

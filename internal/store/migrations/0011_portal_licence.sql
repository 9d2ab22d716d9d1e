-- An approval may also require the portal's licence key: registration then
-- must carry BX_LICENCE = md5("BITRIX" . key . "LICENCE") and a BX_HASH
-- made with the key (CRestUtil::signLicenseRequest). Only hashes of the key
-- are kept: licence = the expected BX_LICENCE, key_md5 = md5(key), which
-- BX_HASH is built from. Empty = no licence check.
ALTER TABLE portal_allow ADD COLUMN licence VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE portal_allow ADD COLUMN key_md5 VARCHAR(32) NOT NULL DEFAULT '';

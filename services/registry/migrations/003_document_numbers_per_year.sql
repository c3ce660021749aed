-- Document numbers restart every year: a number is signed once per locality and year of
-- `signed_on` (decision 13 of docs/CONTRACT.md), no longer once per locality. Every claim
-- stored before stays unique under the new key, so existing rows all carry over.
ALTER TABLE registry.document_numbers ADD COLUMN year integer;

-- A claim is stored in the transaction that appends its agreement's signing, sequence 1,
-- whose canonical JSON envelope holds `data.signed_on` as YYYY-MM-DD.
UPDATE registry.document_numbers AS claim
SET year = extract(year FROM (signing.envelope::jsonb #>> '{data,signed_on}')::date)::integer
FROM registry.events AS signing
WHERE signing.agreement_id = claim.agreement_id AND signing.sequence = 1;

-- A claim whose signing cannot be found fails here, rather than being guessed a year.
ALTER TABLE registry.document_numbers ALTER COLUMN year SET NOT NULL;
ALTER TABLE registry.document_numbers DROP CONSTRAINT document_numbers_pkey;
ALTER TABLE registry.document_numbers ADD PRIMARY KEY (locality, year, document_number);

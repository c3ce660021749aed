-- Search (contract decision 14): `q` matches when each of its words is a substring of
-- search_text (`LIKE '%word%'`), ranked by trigram similarity. A GIN trigram index serves
-- those LIKEs whatever the order of the words.
--
-- pg_trgm exists once per database, in one schema, while this file runs with search_path set
-- to the live read models or to an audit shadow (`coordreg-audit rebuild`): so the extension
-- goes into `public`, named explicitly, and everything of it is named with `public.`; every
-- copy of the read models shares it and dropping a shadow leaves it in place. Should pg_trgm
-- already be installed in another schema, this file fails (no `public.gin_trgm_ops`) rather
-- than guessing. pg_trgm is a trusted extension (PostgreSQL 13+): a role with CREATE on the
-- database may create it, no superuser needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE INDEX agreements_search_text_trgm ON agreements USING gin (search_text public.gin_trgm_ops);

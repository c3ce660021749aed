-- Pages of a party's obligations (and of what it ceded) and of the overdue report
-- (docs/CONTRACT.md B7, ADR 0005) are read in the lists' order and stop at the page's limit:
-- these indexes hold that order, so a page is read from the index without sorting every row
-- of the party, or every active lead obligation, first.
CREATE INDEX party_obligations_page ON party_obligations (party_id, document_number, agreement_id, obligation_id);
CREATE INDEX party_transfers_page ON party_transfers (party_id, document_number, agreement_id, obligation_id);
CREATE INDEX party_obligations_overdue_page ON party_obligations (document_number, agreement_id, obligation_id, party_id)
    WHERE role = 'lead' AND status = 'active';

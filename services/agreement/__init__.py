"""The agreement as folded from its events: one pure model for every side that folds them
(the registry decides on it, the projections and the audit tool build views of it)."""

"""The console's pages, one router per page (or pair of GET/POST on one form)."""

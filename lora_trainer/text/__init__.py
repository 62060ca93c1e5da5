"""Sentences a user reads, as stable keys with English templates in the code and translations beside them."""

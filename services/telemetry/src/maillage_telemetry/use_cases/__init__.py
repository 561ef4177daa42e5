"""Use cases (the service layer): each owns one transaction through a UnitOfWork."""

"""mvg-sync: keeps Min vård Gävleborg (Clinic24) in step with Cosmic."""

"""What arrives from a provider: inbound texts (inbound), delivery receipts
(receipts), and texts held for a person to read (review)."""

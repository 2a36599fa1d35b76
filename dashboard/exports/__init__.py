"""Files built from what the store hands a principal: the caseload as CSV, a patient's progress
report (its model, shared by the printable page and the PDF, and the PDF itself). Nothing here
reads the database or decides access: the callers pass records the store already shaped."""

"""One class per thing a user can ask for; entrypoints call these and nothing else."""

"""Analysis of representations and of the prediction head: torch-only metrics, Lightning callbacks."""

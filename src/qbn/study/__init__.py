"""`python -m qbn.study`: the paper's claims answered by one resumable command (plan, runner,
statistics, verdicts and the generated RESULTS.md)."""

"""Ops tooling for the rules: test cases run through the serving planner (`cases`, `runner`,
`proof`), and an access diff of two rules files (`diff`), rendered by `report`."""

"""Electric's where parser, modelled once: its types, literals, casts, operators and functions.

The gateway's checks (`gateway/sql/subset.py`) and the Electric imitation the tests run against
(`electric_imitation/where_expressions.py`) both judge a where by these rules. See `types`.
"""

"""Hypothesis strategies for tool-call values, shared by the core's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from toolcall.types import Action, ToolCall

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=5)
calls = st.builds(ToolCall, name=names, arguments=arguments)
call_actions = st.builds(Action, calls=st.lists(calls, min_size=1, max_size=4), ordered=st.booleans())

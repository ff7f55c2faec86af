"""Lua scripts run by the Redis stores; ``_common.lua`` is prefixed to each."""

"""Every Redis call: keys, Lua scripts, and the stores built on them."""

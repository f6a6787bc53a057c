"""What happens, step by step: the use cases that join the rules, the store and the relay."""

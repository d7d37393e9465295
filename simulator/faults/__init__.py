"""What goes wrong in a chaos run: the fault kinds, the plan drawn from the seed, and what
became of each fault."""

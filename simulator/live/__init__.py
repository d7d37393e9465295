"""Live runs against real processes: Mosquitto, the worker as a child process, a TCP fault
proxy in between, and an independent observer on the broker."""

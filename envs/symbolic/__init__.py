"""Symbolic planning domains (DroneNav, BlocksWorld): states, actions, task generators."""

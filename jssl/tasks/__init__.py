"""Pretext tasks: how views and targets are made, which model parts, which loss."""

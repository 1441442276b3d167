"""Gymnasium + MuJoCo tasks with language instructions, scripted experts, demo datasets,
third-party adapters and symbolic planning domains.

``import envs`` registers the gymnasium ids in the ``robodecode`` namespace. This package
imports nothing else of robodecode.
"""

"""Blender (bpy) renderer: templates, scene building, outputs. No Dagster, no network.

bpy is imported only inside the worker process (``rendering.worker``); everything else here is
plain Python so that planners and pipelines can build render jobs without loading Blender.
"""

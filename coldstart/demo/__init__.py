"""The seeded demo world and the demo run that takes it through every stage."""

from coldstart.demo.world import World, WorldConfig, build_world, write_world

__all__ = ["World", "WorldConfig", "build_world", "write_world"]

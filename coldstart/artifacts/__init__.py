"""Every served model's artifact in one place: training on the store, saving and
registering (`training`), the served kinds and loading any saved kind (`registry`)."""

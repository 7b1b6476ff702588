"""Every served model in one place: training on the store, saving and registering
(`artifacts`), and loading any saved kind (`registry`)."""

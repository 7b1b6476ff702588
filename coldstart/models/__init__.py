"""Every served model in one place: training on the store, saving, registering, loading
(`artifacts`, `registry`), and the offline evaluation report (`report`)."""

"""The package's actions. Deployable folders are assembled by actions/build.py."""

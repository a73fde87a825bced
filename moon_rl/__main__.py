"""`python -m moon_rl ...` (also what `accelerate launch -m moon_rl ...` runs)."""

from moon_rl.cli import main

if __name__ == "__main__":
    main()

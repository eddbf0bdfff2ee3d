"""run_squad.py with --squad_version=1.1 preset, under the original run_squad_v1.py's name:
it takes that script's command lines unchanged (run_squad.py lists every flag)."""
import run_squad

if __name__ == "__main__":
    run_squad.run(default_version="1.1")

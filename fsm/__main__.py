"""``python -m fsm`` runs the ``voucher-fsm`` command."""

from fsm.cli import main

if __name__ == "__main__":
    main()

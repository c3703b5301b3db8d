"""voucher-fsm: the Bleepay voucher protocol as state machines and schemas, and a traffic validator."""

__version__ = "0.1.0"

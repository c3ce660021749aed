"""`python -m services.console`: the console on CONSOLE_HOST:CONSOLE_PORT (`coordreg-console`)."""

from services.console.app import main

main()

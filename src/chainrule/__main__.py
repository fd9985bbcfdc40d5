import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while importing: exit as an interrupted command, without a traceback
    sys.exit(130)

sys.exit(main())

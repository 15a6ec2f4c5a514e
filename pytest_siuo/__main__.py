"""``python -m pytest_siuo render|compare``: see pytest_siuo/cli.py."""

from pytest_siuo.cli import main

raise SystemExit(main())

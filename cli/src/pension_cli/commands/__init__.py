"""The operator commands of ``pension``: each module adds its subcommands to the parser."""

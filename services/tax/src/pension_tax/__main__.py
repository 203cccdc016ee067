from pension_tax.bootstrap import DEFINITION
from pension_shared.runtime import run_service_cli

if __name__ == "__main__":
    run_service_cli(DEFINITION)

from axme_cli.main import main

main()

from axme_cli.launch import main

main()

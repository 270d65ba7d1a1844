from restoregraph.cli.main import main

main()

from asrkit.cli.main import main

main()

from csbridge.tools.cli import main

main()

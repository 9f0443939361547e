from csbridge.tools.launcher import main

main()

from dogbreed.cli import main

main()

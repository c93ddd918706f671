from chain_listener.listener import main

main()

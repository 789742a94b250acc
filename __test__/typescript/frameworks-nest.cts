// pixstore-native/nestjs from CommonJS (runs on Node 22+, where require() loads Nest 12's ES modules).
import { PixstoreModule, type PixstoreModuleConfig } from 'pixstore-native/nestjs'

const config: PixstoreModuleConfig = { backend: { errorHandlingMode: 'throw' }, authorize: async () => true }
const dynamicModule = PixstoreModule.forRoot(config)
void dynamicModule.module

import { saveImage } from 'pixstore-native/backend'

// A number is not an image buffer: tsc must refuse this.
void saveImage(42)
